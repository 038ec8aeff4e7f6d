"""HTTP routes, one router per concern: health, models, sampling (prior + latents) and images (uploads)."""
