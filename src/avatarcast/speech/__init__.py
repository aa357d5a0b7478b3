"""Speech: audio ingest, TTS backends, phoneme timing and lip-sync engines."""
