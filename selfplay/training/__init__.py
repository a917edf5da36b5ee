"""Preference training of the next policy with TRL, and saving it in Hugging Face format."""
