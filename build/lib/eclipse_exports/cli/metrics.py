"""``metrics``: the Prometheus metrics, printed once or served over HTTP.

The figures are read from Redis on every scrape (``eclipse_exports/observability/metrics.py``), so any
number of these servers, restarted whenever, report the same. Imports only click, redis and
``prometheus_client`` (no Dagster).
"""

import signal
import threading

import click

from eclipse_exports.cli import common


@click.command("metrics")
@click.option("--serve", is_flag=True, help="Serve the metrics over HTTP (GET /metrics) until stopped.")
@click.option("--port", type=click.IntRange(0, 65535), default=9464, show_default=True,
              help="Port to serve on (0: any free port, printed).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 for a Prometheus on another machine.")
def metrics_cmd(serve: bool, port: int, host: str) -> None:
    """Print the Prometheus metrics once, or serve them with --serve.

    \b
    Examples:
      eclipse-exports metrics | grep eclipse_exports_jobs_total
      eclipse-exports metrics --serve --port 9464 --host 0.0.0.0
    """
    import redis
    from prometheus_client import start_http_server

    from eclipse_exports.observability.metrics import exposition, registry_for

    settings = common.settings()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
    with common.service_errors(settings):
        client.ping()
        if not serve:
            click.echo(exposition(client).decode(), nl=False)
            return
    server, _thread = start_http_server(port, addr=host, registry=registry_for(client))
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    click.echo(f"serving Prometheus metrics on http://{shown}:{server.server_port}/metrics "
               "(Ctrl-C or SIGTERM stops)", err=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()
