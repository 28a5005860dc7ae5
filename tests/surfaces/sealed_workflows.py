"""Workflows whose payloads go through a codec, for tests/surfaces/test_converter_option.py:
this module defines them and the converter that ``--converter PATH:converter`` loads."""

from __future__ import annotations

from typing import Any

from perdure import DataConverter, activity, workflow
from perdure.codecs import ZlibCodec

converter = DataConverter([ZlibCodec(min_size=0)])
not_a_converter = 5


def make_converter() -> DataConverter:
    """A function that returns the converter works as well (keys read at start)."""
    return converter


def failing_converter() -> DataConverter:
    raise KeyError("PAYLOAD_KEY is not set")


@activity.defn
async def shout(word: str) -> str:
    return word.upper()


@workflow.defn
async def sealed_echo(word: str) -> dict[str, Any]:
    loud = await shout(word)
    more = await workflow.wait_signal("more")
    workflow.set_state("seen", word)
    return {"loud": loud, "more": more}
