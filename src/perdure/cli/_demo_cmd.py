"""``perdure demo``: the order-fulfilment crash demo."""

from __future__ import annotations

from typing import Optional

import typer

from perdure.cli._app import app


@app.command()
def demo(
    folder: Optional[str] = typer.Option(None, help="Where to keep the demo database."),
    ui: bool = typer.Option(
        False,
        "--ui",
        help="Then serve the web UI on 127.0.0.1 over the demo's data (Ctrl-C stops).",
    ),
    port: int = typer.Option(8765, min=0, max=65535, help="Port for --ui (busy: any free one)."),
) -> None:
    """Run the order-fulfilment demo: a worker is SIGKILLed, the card charged once.

    A worker is SIGKILLed mid-way through an order; another worker takes the run
    over, the order still completes, and the card is charged exactly once.
    """
    from perdure.demo.run import run_demo

    raise typer.Exit(run_demo(folder, ui_port=port if ui else None))
