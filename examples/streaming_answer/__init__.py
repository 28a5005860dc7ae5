"""A model's answer streamed to the asker token by token: the model call writes
each token as it comes, the workflow writes its progress; a SIGKILL mid-answer,
and the reader tells the cut-short attempt from the retry by each token's
source. Run it: ``python -m examples.streaming_answer``."""
