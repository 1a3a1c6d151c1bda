"""`queuectl metrics`: the Prometheus text exposition of SPEC §9 on stdout, the same as the web
server's `GET /metrics` (both are queuectl.web.metrics.render)."""

from __future__ import annotations

import sys
from types import ModuleType

import click

from .base import Command, Context, pass_reader

# Where the extra comes from: queuectl is installed from its checkout, not from an index.
WEB_EXTRA_HINT = "pip install '.[web]' (from the queuectl checkout)"


def web_metrics_module() -> ModuleType:
    """queuectl.web.metrics, or a one-line error (exit 1) naming the missing `web` extra."""
    try:
        from ..web import metrics
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "prometheus_client":
            raise
        raise click.ClickException(
            f"queuectl metrics needs the 'web' extra (prometheus_client is not installed): "
            f"{WEB_EXTRA_HINT}"
        ) from None
    return metrics


@click.command(cls=Command)
@pass_reader
def metrics(ctx: Context) -> None:
    """Print the store's metrics in the Prometheus text format.

    Jobs by queue and state, each queue's oldest ready job's age and whether it is paused,
    live and busy workers, runs by queue and outcome, run times by queue (a histogram), and
    the version: the same as the dashboard's GET /metrics. Needs the 'web' extra:
    pip install '.[web]' from the queuectl checkout.

    \b
    Example:
      queuectl metrics | grep queuectl_jobs
    """
    body, _content_type = web_metrics_module().render(ctx.queue)
    sys.stdout.flush()
    sys.stdout.buffer.write(body)
    sys.stdout.buffer.flush()
