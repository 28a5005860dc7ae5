"""A chat session: each user message is an update answered with the assistant's
reply; a SIGKILL while the model is thinking, and a retry with the same update
id, still get one reply. Run it: ``python -m examples.chat_session``."""
