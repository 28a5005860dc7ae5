"""The history model: events (past tense) and commands (imperative). Imports nothing
outside itself: ``eventtypes`` (the event classes), ``events`` (their encoding,
re-exporting the classes), ``commands`` (commands and replay matching),
``turns`` (cutting histories into turns), ``reset`` (where a new run may take
over a run's history), ``updates`` (how an update's request travels as a signal),
``priorities`` (the range of a run's or an activity's priority).

A run's history is an append-only list of events, numbered from 1 by ``seq``.
It is cut into *turns*: each turn is the *input* events it consumed (in the
order they arrived), then the *command* events the workflow code produced while
handling them, every one stamped with the turn's workflow time. Inputs come
before commands, so an input that begins the history or follows a command
begins a turn; a turn that follows an input (one whose turn issued no
command) begins with a :class:`TurnStarted` marker instead (format 1 put one
before every turn). Replay feeds each recorded turn's inputs in the same
batch and checks the code produces the same commands.

Commands that wait for an answer (an activity, a timer) carry ``ref``: one
counter per run, incremented in the order the workflow issued them; the answer
(``ActivityCompleted``, ``TimerFired``) names the same ``ref``.

Encoding: ``event_to_dict`` / ``event_from_dict`` give a JSON object with
``"v"`` (the encoding version, :data:`HISTORY_FORMAT`), ``"type"``, ``"seq"``,
``"time"`` and the event's own fields. A reader accepts every version up to its
own and ignores fields it does not know, so older histories keep replaying.
"""

from perdure._history.commands import *
from perdure._history.commands import __all__ as _commands
from perdure._history.events import *
from perdure._history.events import __all__ as _events
from perdure._history.priorities import *
from perdure._history.priorities import __all__ as _priorities
from perdure._history.reset import *
from perdure._history.reset import __all__ as _reset
from perdure._history.turns import *
from perdure._history.turns import __all__ as _turns
from perdure._history.updates import *
from perdure._history.updates import __all__ as _updates

__all__ = [*_events, *_commands, *_turns, *_reset, *_updates, *_priorities]
