"""Keeping the proxy's route table equal to what the database says is running."""
