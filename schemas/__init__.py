"""The shared language of trainops: request, quote, job spec, progress, status and the store."""
