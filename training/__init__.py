"""Training: turns MNIST into a new version of the Gumbel-Softmax VAE in the model store."""
