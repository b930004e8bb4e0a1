"""The `tutorlane` command line. Each command imports what it needs when it runs."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

import click

if TYPE_CHECKING:
    from tutorlane.entrypoints.chat import ServerInfo
    from tutorlane.entrypoints.settings import Settings


# NOTE: longer than a client's idle pool timeout: a server that closes an idle
# connection while a client reuses it makes that request fail without an answer.
KEEP_ALIVE_SECONDS = 30


def load_settings() -> Settings:
    """Read settings from the environment, or exit with what is wrong."""
    from pydantic import ValidationError

    from tutorlane.entrypoints.settings import Settings, variable_of

    try:
        return Settings()
    except ValidationError as ex:
        problems = "; ".join(
            f"{'.'.join(variable_of(str(part)) for part in error['loc']) or 'settings'}"
            f": {error['msg'].removeprefix('Value error, ')}"
            for error in ex.errors()
        )
        raise click.ClickException(f"bad configuration: {problems}") from None


class _ClearErrorsGroup(click.Group):
    """The command group; a service that fails or a bad setting ends in one line."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; turn the failures a user can fix into a clear exit."""
        try:
            return super().invoke(ctx)
        except click.ClickException:
            raise
        except Exception as ex:
            problem = _service_problem(ex)
            if problem is None:
                raise  # unexpected: its traceback is worth seeing
            raise click.ClickException(problem) from None


@click.group(cls=_ClearErrorsGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """tutorlane: the backend of a chat maths tutor on SwiftChat."""
    from tutorlane.entrypoints.logs import configure_logging

    configure_logging(verbose)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes (gunicorn with uvicorn workers); needs TUTORLANE_REDIS_URL.",
)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the SwiftChat webhook (embedded default when nothing is configured)."""
    from tutorlane.bootstrap import pick_course, webhook_secret
    from tutorlane.domain.course import CourseError
    from tutorlane.entrypoints.chat import ServerInfo, write_server_info

    settings = load_settings()
    if workers > 1 and settings.is_embedded:
        raise click.UsageError(
            "--workers above 1 needs TUTORLANE_REDIS_URL: the embedded default keeps "
            "sessions inside one process"
        )
    try:
        course = pick_course(settings)
    except CourseError as ex:
        raise click.ClickException(str(ex)) from None
    # NOTE: read (or made) here, once: the server would fail on it after the
    # banner, in a traceback, in every worker process.
    _read_pseudonymiser(settings)

    _check_port_free(host, port)
    secret = webhook_secret(settings)
    base_url = f"http://{_url_host(host)}:{port}"
    write_server_info(settings.var_dir, ServerInfo(base_url, secret))
    click.echo(f"tutorlane: course {course.id!r}, {len(course.nodes)} questions")
    for role, where in settings.describe().items():
        click.echo(f"  {role:9} {where}")
    click.echo(f"Webhook URL: {base_url}/webhooks/swiftchat/{secret}")
    click.echo(f"Health:      {base_url}/healthz")
    if settings.swiftchat_base_url is None:
        click.echo(f"Replies:     {base_url}/sink/{secret}/replies?to=<phone>")
        click.echo("Try it: tutorlane chat   (in another terminal)")

    if workers == 1:
        import uvicorn

        from tutorlane.entrypoints.webhook import RuntimeHolder, create_app

        uvicorn.run(
            create_app(RuntimeHolder(settings, secret)),
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        return

    os.environ.update(worker_environment(settings, secret, workers))
    command = [
        sys.executable, "-m", "gunicorn",
        "--worker-class", "uvicorn_worker.UvicornWorker",
        "--workers", str(workers),
        "--bind", f"{host}:{port}",
        "--no-control-socket",
        "--log-level", "warning",
        "--keep-alive", str(KEEP_ALIVE_SECONDS),
        "tutorlane.entrypoints.asgi:app",
    ]  # fmt: skip
    # Replace this process, so that signals reach gunicorn directly.
    os.execv(sys.executable, command)  # noqa: S606 - a fixed argv, no shell


def worker_environment(settings: Settings, secret: str, workers: int) -> dict[str, str]:
    """Return what `serve`'s gunicorn workers must find in their environment.

    The one webhook secret, and each worker's share of the SwiftChat API's rate
    limit: every worker sends through a token bucket of its own.
    """
    share = settings.swiftchat_rate_per_second / workers
    return {
        "TUTORLANE_WEBHOOK_SECRET": secret,
        "TUTORLANE_SWIFTCHAT_RATE_PER_SECOND": repr(share),
    }


def _check_port_free(host: str, port: int) -> None:
    """Exit with a clear message if something already listens on host:port."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as ex:
            raise click.ClickException(
                f"cannot listen on {host}:{port} ({ex.strerror}); is another "
                "tutorlane serve running? Stop it or pick --port"
            ) from None


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


@main.command()
@click.option("--url", help="Base URL of a running server (default: var/serve.json).")
@click.option("--secret", help="Its webhook secret (default: var/serve.json).")
@click.option("--phone", default="+919000000001", show_default=True)
def chat(url: str | None, secret: str | None, phone: str) -> None:
    """Talk to the bot as a student; reads lines from the terminal or a pipe."""
    from tutorlane.entrypoints.chat import ChatError, ServerInfo, read_server_info

    settings = load_settings()
    info = ServerInfo(url.rstrip("/"), secret or "") if url else None
    if info is not None and not secret:
        raise click.UsageError("--url needs --secret too")
    if info is None:
        info = read_server_info(settings.var_dir)

    try:
        if info is None:
            click.echo("(no server running: chatting with an in-process one)", err=True)
            asyncio.run(_chat_in_process(settings, phone))
        else:
            asyncio.run(_chat_remote(info, phone))
    except ChatError as ex:
        raise click.ClickException(str(ex)) from None
    except KeyboardInterrupt:
        click.echo()


def _input_lines() -> Iterator[str]:
    if not sys.stdin.isatty():
        yield from sys.stdin
        return
    click.echo("Type your answers; hi starts the quiz, Ctrl-D ends.")
    while True:
        try:
            yield input("you> ")
        except EOFError:
            click.echo()
            return


async def _chat_remote(info: ServerInfo, phone: str) -> None:
    import httpx

    from tutorlane.entrypoints.chat import ChatError, run_chat

    async with httpx.AsyncClient(base_url=info.base_url, timeout=15.0) as http:
        try:
            await run_chat(http, info, phone, _input_lines())
        except httpx.TransportError as ex:
            raise ChatError(
                f"cannot reach a server at {info.base_url}: {ex or type(ex).__name__}"
            ) from None


async def _chat_in_process(settings: Settings, phone: str) -> None:
    import httpx

    from tutorlane.entrypoints.chat import ServerInfo, run_chat
    from tutorlane.entrypoints.webhook import RuntimeHolder, create_app

    settings = settings.model_copy(update={"swiftchat_base_url": None})
    holder = RuntimeHolder(settings)
    app = create_app(holder)
    runtime = await holder.start()
    try:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(
            transport=transport, base_url="http://chat"
        ) as http:
            info = ServerInfo("http://chat", runtime.secret)
            await run_chat(http, info, phone, _input_lines())
    finally:
        await holder.stop()


@main.command()
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10_000))
def relay(batch: int) -> None:
    """Move events from the Redis outbox to RabbitMQ, confirmed, in order.

    Needs TUTORLANE_REDIS_URL and TUTORLANE_AMQP_URL. Run one or more; each reads
    every outbox shard through a Redis consumer group and takes over entries that a
    relay which died left behind. While RabbitMQ is away the outbox grows, and it
    drains when the broker is back.
    """
    from tutorlane.entrypoints.pipeline import run_relay

    settings = load_settings()
    if not (settings.redis_url and settings.amqp_url):
        raise click.UsageError(
            "the relay moves events from Redis to RabbitMQ: set TUTORLANE_REDIS_URL "
            "and TUTORLANE_AMQP_URL (without them, `serve` relays in process)"
        )
    _run_until_signalled(lambda stop: run_relay(settings, batch, stop))


@main.command()
@click.option(
    "--batch", default=1000, show_default=True, type=click.IntRange(1, 10_000)
)
@click.option(
    "--prefetch",
    default=2000,
    show_default=True,
    type=click.IntRange(1, 65_535),
    help="Unacknowledged messages RabbitMQ may hand this worker at once.",
)
def worker(batch: int, prefetch: int) -> None:
    """Record events from RabbitMQ in the event store, exactly once, in order.

    Needs TUTORLANE_AMQP_URL; the event store is TUTORLANE_DATABASE_URL (a SQLite
    file under TUTORLANE_VAR when unset). Appends in batches of up to --batch events
    per transaction and acknowledges only after the commit. While the database is
    away, events wait in RabbitMQ.
    """
    from tutorlane.entrypoints.pipeline import run_worker

    settings = load_settings()
    if not settings.amqp_url:
        raise click.UsageError(
            "the worker consumes RabbitMQ: set TUTORLANE_AMQP_URL (without it, "
            "`serve` records events in process)"
        )
    _run_until_signalled(lambda stop: run_worker(settings, batch, prefetch, stop))


@main.group("dead-letters")
def dead_letters() -> None:
    """Parked events: what the worker could not record, and why."""


def _bus_settings() -> Settings:
    settings = load_settings()
    if not settings.amqp_url:
        raise click.UsageError(
            "parked events are kept by RabbitMQ: set TUTORLANE_AMQP_URL (the "
            "embedded default only logs what it parks, and keeps it in memory)"
        )
    return settings


@dead_letters.command("show")
@click.option(
    "--limit", default=10_000, show_default=True, type=click.IntRange(1, 1_000_000)
)
def dead_letters_show(limit: int) -> None:
    """Count the parked messages by reason; every one stays parked."""
    from tutorlane.entrypoints.pipeline import parked_reasons

    settings = _bus_settings()
    reasons = asyncio.run(parked_reasons(settings, limit))
    queue = f"{settings.bus_name}.dead"
    if not reasons:
        click.echo(f"nothing parked in {queue}")
        return
    counted = reasons.total()
    if counted < limit:
        click.echo(f"{counted} parked in {queue}:")
    else:
        click.echo(f"{queue} holds {limit} or more; the oldest {limit}:")
    for reason, count in reasons.most_common():
        click.echo(f"{count:>8}  {reason}")


@dead_letters.command("replay")
@click.option(
    "--limit", default=10_000, show_default=True, type=click.IntRange(1, 1_000_000)
)
def dead_letters_replay(limit: int) -> None:
    """Send parked events back to the workers, once their cause is fixed.

    The worker records each event once, drops it if it was recorded meanwhile, or
    parks it again with its reason. Messages that still cannot be read go back to
    the end of the queue. Run it with the worker running.
    """
    from tutorlane.entrypoints.pipeline import replay_dead_letters

    outcome = asyncio.run(replay_dead_letters(_bus_settings(), limit))
    click.echo(
        f"replayed {outcome.messages} messages ({outcome.events} events); "
        f"{outcome.still_unreadable} still unreadable, parked again"
    )


@dead_letters.command("export")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--limit", default=10_000, show_default=True, type=click.IntRange(1, 1_000_000)
)
@click.option(
    "--remove",
    is_flag=True,
    help="Take them off the queue once the file is written (for messages that will "
    "never be readable); without it they stay parked.",
)
def dead_letters_export(out: Path, limit: int, remove: bool) -> None:
    """Write the oldest parked messages to OUT (a new file) as JSON lines.

    Each line has the reason and the message's bytes in base64, so that what is
    taken off the queue is kept, and can be looked at or sent back by hand.
    """
    from tutorlane.entrypoints.pipeline import export_dead_letters

    settings = _bus_settings()
    try:
        written = asyncio.run(export_dead_letters(settings, limit, out, remove))
    except FileExistsError:
        raise click.UsageError(f"{out} exists: export writes a new file") from None
    except OSError as ex:
        raise click.UsageError(f"cannot write {out}: {ex.strerror}") from None
    fate = "removed from" if remove else "still parked in"
    click.echo(f"{written} messages written to {out}, {fate} {settings.bus_name}.dead")


def _run_until_signalled(
    work: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
) -> None:
    """Run `work` until SIGINT or SIGTERM, then let it finish cleanly."""
    import signal

    async def main_task() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await work(stop)
        finally:
            await _end_leftover_tasks()

    asyncio.run(main_task())


async def _end_leftover_tasks(seconds: float = 5.0) -> None:
    """Cancel the tasks that clients left running, again while any carries on.

    NOTE: aio-pika's reconnecting task, left behind by a start-up cut short, takes
    a cancel while it connects for a failed attempt and tries again; `asyncio.run`
    cancels once and then waits for it forever.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        if not leftover:
            return
        for task in leftover:
            task.cancel()
        await asyncio.wait(leftover, timeout=0.1)


T = TypeVar("T")


def _with_database_errors(work: Callable[[], T]) -> T:
    """Run `work`; turn a database that does not answer into a clear exit."""
    from eventsourcing.persistence import PersistenceError
    from sqlalchemy.exc import DBAPIError

    from tutorlane.domain.course import CourseError

    try:
        return work()
    except (PersistenceError, DBAPIError) as ex:
        settings = load_settings()
        problem = _failed(settings, _DATABASE, _reason(ex))
        raise click.ClickException(_without_passwords(problem, settings)) from None
    except CourseError as ex:
        raise click.ClickException(str(ex)) from None


@dataclass(frozen=True)
class _Service:
    """A service a command uses: its name, its setting, its clients' modules."""

    name: str
    setting: str
    url_attribute: str  # of `Settings`
    modules: tuple[str, ...]

    def where(self, settings: Settings) -> str:
        """Return where the settings say it is, without credentials."""
        from tutorlane.entrypoints.settings import hide_password

        return hide_password(getattr(settings, self.url_attribute)) or "?"


_REDIS = _Service("Redis", "TUTORLANE_REDIS_URL", "redis_url", ("redis",))
_RABBITMQ = _Service(
    "RabbitMQ", "TUTORLANE_AMQP_URL", "amqp_url", ("aio_pika", "aiormq", "pamqp")
)
_DATABASE = _Service(
    "the database",
    "TUTORLANE_DATABASE_URL",
    "event_store_url",
    ("sqlalchemy", "eventsourcing", "MySQLdb", "sqlite3", "alembic"),
)


def _service_problem(ex: Exception) -> str | None:
    """Return one line on a failed service or setting, or None for other errors."""
    from tutorlane.bootstrap import ServiceUnavailable
    from tutorlane.domain.course import CourseError

    settings = load_settings()
    if isinstance(ex, (ServiceUnavailable, CourseError)):
        problem: str | None = str(ex)
    else:
        problem = _what_failed(ex, settings)
    return None if problem is None else _without_passwords(problem, settings)


def _what_failed(ex: Exception, settings: Settings) -> str | None:
    """Say what failed and which setting to check, if `ex` tells of either."""
    import socket

    import aiormq.exceptions
    import redis.exceptions
    import sqlalchemy.exc
    from eventsourcing import persistence

    if isinstance(ex, OSError) and ex.filename is not None:
        for folder, setting in _folders(settings):
            if _is_in(folder, ex.filename):
                return (
                    f"cannot use {ex.filename} ({ex.strerror}); set {setting} to "
                    "a place this user can write"
                )
    if isinstance(ex, sqlalchemy.exc.ArgumentError):
        return f"{_DATABASE.setting}: {_reason(ex)}"

    refused_login = (
        redis.exceptions.AuthenticationError,
        aiormq.exceptions.AuthenticationError,
        aiormq.exceptions.ProbableAuthenticationError,
    )
    failed = (
        # NOTE: also what a server answers to a bad URL path (a Redis database
        # number out of range, an AMQP vhost that does not exist).
        redis.exceptions.ResponseError,
        aiormq.exceptions.AMQPError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        redis.exceptions.RedisClusterException,
        aiormq.exceptions.AMQPConnectionError,
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        persistence.OperationalError,
        persistence.InterfaceError,
        ConnectionError,
        TimeoutError,
        socket.gaierror,
    )
    service = _service_of(ex) if isinstance(ex, failed) else None
    if service is None:
        return None
    if isinstance(ex, refused_login):
        return (
            f"{service.name} at {service.where(settings)} refused the login; check "
            f"the user and password in {service.setting}"
        )
    return _failed(settings, service, _reason(ex))


def _failed(settings: Settings, service: _Service, reason: str) -> str:
    return (
        f"{service.name} at {service.where(settings)} failed: {reason}. "
        f"Is it running? Check {service.setting}"
    )


def _without_passwords(message: str, settings: Settings) -> str:
    """Return `message` with any password of the configured URLs replaced by ***.

    NOTE: the URLs shown are already without credentials; this is for a driver's
    message that might quote one.
    """
    for url in (settings.redis_url, settings.amqp_url, settings.database_url):
        password = urlsplit(url or "").password
        if password:
            message = message.replace(password, "***")
            message = message.replace(unquote(password), "***")
    return message


def _service_of(ex: BaseException) -> _Service | None:
    """Return the service whose client raised `ex`, from its type or its traceback.

    NOTE: the traceback, because clients also raise the built-in errors (aio-pika a
    bare TimeoutError when RabbitMQ accepts a connection and never answers).
    """
    import traceback

    modules = [type(ex).__module__]
    frames = [frame for frame, _line in traceback.walk_tb(ex.__traceback__)]
    modules += [frame.f_globals.get("__name__", "") for frame in reversed(frames)]
    for module in modules:
        for service in (_REDIS, _RABBITMQ, _DATABASE):
            if module.partition(".")[0] in service.modules:
                return service
    return None


def _reason(ex: BaseException) -> str:
    """Return the first line of what the driver said, or the error's name."""
    for error in (getattr(ex, "orig", None), ex, ex.__cause__):
        if isinstance(error, BaseException) and str(error).strip():
            return str(error).strip().splitlines()[0].rstrip(".")
    return type(ex).__name__


def _folders(settings: Settings) -> list[tuple[Path, str]]:
    """Return the folders tutorlane writes in, each with the setting that says so."""
    import sqlalchemy as sa

    folders = [(settings.var_dir, "TUTORLANE_VAR")]
    if settings.database_url is not None:
        url = sa.make_url(settings.database_url)
        if url.get_backend_name() == "sqlite" and url.database:
            folders.append((Path(url.database).parent, "TUTORLANE_DATABASE_URL"))
    return folders


def _is_in(folder: Path, filename: object) -> bool:
    """Tell whether `filename` (of an OSError) is `folder` or inside it."""
    if not isinstance(filename, (str, Path)):
        return False
    return Path(filename).resolve().is_relative_to(folder.resolve())


def _stop_on_signals(stop: Callable[[], None]) -> None:
    """Call `stop` on SIGINT or SIGTERM, to let blocking work finish cleanly."""
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop())


@main.command()
def migrate() -> None:
    """Bring the database's schema to the newest revision (Alembic).

    The event store and the projections live in TUTORLANE_DATABASE_URL (a SQLite
    file under TUTORLANE_VAR when unset). Safe to run again, and from several hosts
    at once: they take turns.
    """
    from tutorlane.adapters.schema import upgrade_database

    settings = load_settings()
    before, after = _with_database_errors(
        lambda: upgrade_database(settings.event_store_url)
    )
    where = settings.describe()["events"]
    if before == after:
        click.echo(f"{where}: schema already at revision {after}")
    else:
        click.echo(f"{where}: schema migrated from {before or 'nothing'} to {after}")


@main.group()
def projections() -> None:
    """Read models in the database: keep them current, inspect, rebuild."""


@projections.command("run")
@click.argument("names", nargs=-1)
@click.option(
    "--batch",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Events applied per transaction.",
)
def projections_run(names: tuple[str, ...], batch: int) -> None:
    """Keep projections current (all when none is named), following the event store.

    Runs until Ctrl-C. `serve` does this itself in the embedded default; with
    TUTORLANE_AMQP_URL set, run one of these beside the relay and the worker, or
    several, each naming some projections, to spread them over cores and hosts
    (the Navigator and the Analyst run beside next_steps).
    """
    import threading

    from tutorlane.entrypoints.projections import UnknownProjection, run_projections

    settings = load_settings()
    stop = threading.Event()
    _stop_on_signals(stop.set)
    try:
        _with_database_errors(
            lambda: run_projections(settings, stop, batch, names=names)
        )
    except UnknownProjection as ex:
        raise click.UsageError(str(ex)) from None


@projections.command("status")
def projections_status() -> None:
    """Show each projection's version, position, the log's head, lag and rows."""
    from rich.console import Console
    from rich.table import Table

    from tutorlane.entrypoints.projections import open_read_side, projection_status

    settings = load_settings()
    read_side = _with_database_errors(lambda: open_read_side(settings))
    try:
        statuses = _with_database_errors(lambda: projection_status(read_side))
    finally:
        read_side.close()

    table = Table(title=f"projections in {settings.describe()['events']}")
    headings = ("name", "version", "generation", "position", "head", "lag", "rows")
    for heading in (*headings, "note"):
        table.add_column(
            heading, justify="left" if heading in ("name", "note") else "right"
        )
    for status in statuses:
        table.add_row(
            status.name,
            str(status.version),
            str(status.generation),
            str(status.position),
            str(status.head),
            str(status.lag),
            str(status.rows),
            status.note,
        )
    Console().print(table)


@projections.command("rebuild")
@click.argument("names", nargs=-1)
def projections_rebuild(names: tuple[str, ...]) -> None:
    """Rebuild projections (all when none is named) beside the live ones, then swap.

    The live tables stay readable and current meanwhile. Interrupt with Ctrl-C and
    run the same command again to resume; a second rebuild of the same projection
    at the same time is refused.
    """
    from tutorlane.entrypoints.projections import rebuild_of

    def rebuild(read_side: Any, projection: Any, show: Any) -> list[str]:
        report = rebuild_of(read_side, projection).run(show)
        resumed = " (resumed)" if report.resumed else ""
        rate = report.events / report.seconds if report.seconds else 0.0
        return [
            f"{report.name}: generation {report.generation} is live at event "
            f"{report.position}{resumed}; {report.events:,} events in "
            f"{report.seconds:.1f} s ({rate:,.0f}/s)"
        ]

    _each_projection_with_progress(
        names, rebuild, "run the same command again to resume"
    )


@projections.command("check")
@click.argument("names", nargs=-1)
def projections_check(names: tuple[str, ...]) -> None:
    """Compare projections (all when none is named) with a rebuild from the log.

    Rebuilds each beside the live one as far as the live one has come, compares
    them row for row, and drops the rebuilt tables; the live tables stay as they
    are. Exits with status 1 if any row differs.
    """
    from tutorlane.entrypoints.projections import rebuild_of

    differing: list[str] = []

    def check(read_side: Any, projection: Any, show: Any) -> list[str]:
        report = rebuild_of(read_side, projection).check(show)
        lines = []
        for difference in report.differences:
            verdict = (
                "equal"
                if difference.equal
                else (
                    f"DIFFERENT: {difference.only_here:,} live rows not in the rebuild "
                    f"(first keys {list(difference.sample_keys)}), "
                    f"{difference.only_there:,} rebuilt rows not live"
                )
            )
            where = report.name
            if difference.table != report.name:
                where += f".{difference.table}"
            lines.append(
                f"{where} at event {report.position}: "
                f"{difference.rows:,} live rows, {difference.other_rows:,} rebuilt; "
                f"{verdict}"
            )
        if not report.equal:
            differing.append(report.name)
            if not report.live_is_current:
                lines.append(
                    f"{report.name}: its live tables were built by another version "
                    "or with other parameters; `tutorlane projections rebuild "
                    f"{report.name}` replaces them"
                )
        return lines

    _each_projection_with_progress(names, check, "the live tables are unchanged")
    if differing:
        raise click.ClickException(f"differ from a rebuild: {', '.join(differing)}")


def _each_projection_with_progress(
    names: tuple[str, ...],
    work: Callable[[Any, Any, Callable[[int, int], None]], list[str]],
    when_interrupted: str,
) -> None:
    """Run `work(read_side, projection, show_progress)` for each chosen projection,
    with a progress bar of events, rate and time left; print the lines it returns
    under its finished bar."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from tutorlane.entrypoints.projections import UnknownProjection, open_read_side
    from tutorlane.projections.rebuild import LostLease, RebuildRunning

    settings = load_settings()
    read_side = _with_database_errors(lambda: open_read_side(settings))
    try:
        chosen = read_side.pick(names)
        for projection in chosen:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>8} events/s"),
                TimeRemainingColumn(),
            ) as bar:
                task = bar.add_task(projection.name, total=None, rate="")

                def show(
                    done: int, total: int, task: Any = task, bar: Any = bar
                ) -> None:
                    elapsed = bar.tasks[0].elapsed or 0.0
                    rate = f"{done / elapsed:,.0f}" if elapsed > 0 else ""
                    bar.update(task, completed=done, total=total, rate=rate)

                lines = _with_database_errors(
                    partial(work, read_side, projection, show)
                )
            for line in lines:
                click.echo(line)
    except (UnknownProjection, RebuildRunning, LostLease) as ex:
        raise click.ClickException(str(ex)) from None
    except KeyboardInterrupt:
        click.echo(f"interrupted: {when_interrupted}", err=True)
        raise SystemExit(130) from None
    finally:
        read_side.close()


@main.group()
def flows() -> None:
    """Course files."""


@flows.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def flows_check(files: tuple[Path, ...]) -> None:
    """Check course files; print what is wrong with each broken one."""
    from tutorlane.adapters.flow_files import load_course_file
    from tutorlane.domain.course import CourseError

    broken = 0
    for path in files:
        try:
            course = load_course_file(path)
        except CourseError as ex:
            click.echo(f"error: {ex}", err=True)
            broken += 1
            continue
        click.echo(
            f"ok: {path}: course {course.id!r}, {len(course.skills)} skills, "
            f"{len(course.nodes)} questions"
        )
    if broken:
        raise SystemExit(1)


@main.group()
def dev() -> None:
    """Tools for trying tutorlane locally."""


@dev.command("swiftchat-imitation")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=int)
def swiftchat_imitation(host: str, port: int) -> None:
    """Run a local imitation of the SwiftChat send-message API."""
    import uvicorn

    from tutorlane.entrypoints.swiftchat_imitation import Imitation, create_imitation

    click.echo(f"SwiftChat imitation on http://{host}:{port} (messages: GET /_sent)")
    uvicorn.run(
        create_imitation(Imitation()), host=host, port=port, log_level="warning"
    )


@dev.command("messages-api-imitation")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8091, show_default=True, type=int)
def messages_api_imitation(host: str, port: int) -> None:
    """Run a local imitation of Anthropic's Messages API (for the Analyst)."""
    import uvicorn

    from tutorlane.entrypoints.messages_api_imitation import (
        MessagesImitation,
        create_messages_imitation,
    )

    click.echo(f"Messages API imitation on http://{host}:{port} (GET /_received)")
    app = create_messages_imitation(MessagesImitation())
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main.group()
def replay() -> None:
    """Recorded students through the running tutor; fit and test knowledge tracing."""


def _read_dataset(path: Path, students: int | None) -> list[Any]:
    from tutorlane.domain.assistments import DatasetError
    from tutorlane.entrypoints.replay import read_dataset

    try:
        return read_dataset(path, students)
    except DatasetError as ex:
        raise click.ClickException(str(ex)) from None


_DATASET = click.argument(
    "dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
_STUDENTS = click.option(
    "--students",
    type=click.IntRange(1),
    help="Only the first N students of the file.",
)


@replay.command("course")
@_DATASET
@click.option(
    "--out",
    default=Path("replay-flows"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the course into; serve it with TUTORLANE_FLOWS.",
)
def replay_course(dataset: Path, out: Path) -> None:
    """Write the course a dataset's students take: a topic menu, a question a skill."""
    from tutorlane.entrypoints.replay import write_course

    path, course = write_course(_read_dataset(dataset, None), out)
    click.echo(
        f"wrote {path}: course {course.id!r}, {len(course.skills)} skills\n"
        f"serve it: TUTORLANE_FLOWS={out} tutorlane serve"
    )


@replay.command("dataset")
@_DATASET
@click.option("--url", help="Base URL of the running server (default: var/serve.json).")
@click.option("--secret", help="Its webhook secret (default: var/serve.json).")
@_STUDENTS
@click.option(
    "--concurrency",
    default=32,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Students chatting at once; each sends one message at a time.",
)
@click.option(
    "--idle-timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Stop waiting for the slow lane after this many seconds without progress.",
)
def replay_dataset(
    dataset: Path,
    url: str | None,
    secret: str | None,
    students: int | None,
    concurrency: int,
    idle_timeout: float,
) -> None:
    """Play a dataset's students through a running server's webhook.

    Run `tutorlane replay course` first and serve its folder (TUTORLANE_FLOWS); this
    command reads the event store of TUTORLANE_DATABASE_URL (or var/events.db) to
    count what the slow lane recorded.
    """
    from tutorlane.adapters.flow_files import load_courses
    from tutorlane.domain.course import CourseError
    from tutorlane.domain.replay import REPLAY_COURSE_ID
    from tutorlane.entrypoints.chat import ServerInfo, read_server_info
    from tutorlane.entrypoints.projections import open_read_side
    from tutorlane.entrypoints.replay import ReplayError, missing_skills, run_dataset

    settings = load_settings()
    if url and not secret:
        raise click.UsageError("--url needs --secret too")
    info = ServerInfo(url.rstrip("/"), secret or "") if url else None
    if info is None:
        info = read_server_info(settings.var_dir)
    if info is None:
        raise click.UsageError(
            f"no running server found in {settings.var_dir / 'serve.json'}: start "
            "`tutorlane serve` "
            "or pass --url and --secret"
        )
    records = _read_dataset(dataset, students)

    # The server is expected to serve the same course folder as this environment.
    try:
        course = load_courses(settings.flows).get(REPLAY_COURSE_ID)
    except CourseError as ex:
        raise click.ClickException(str(ex)) from None
    if course is None:
        raise click.ClickException(
            f"{settings.flows} has no {REPLAY_COURSE_ID} course: run `tutorlane "
            "replay course DATASET --out DIR`, then `export TUTORLANE_FLOWS=DIR` "
            "for this command as for `serve`"
        )
    missing = missing_skills(records, course)
    if missing:
        raise click.ClickException(
            f"the replay course in {settings.flows} has no question for skills "
            f"{missing[:10]}: write it from a file with every skill"
        )

    try:
        result = run_dataset(
            f"{info.base_url}{info.webhook_path}",
            settings.event_store_url,
            records,
            concurrency,
            idle_timeout,
            _existing_pseudonymiser(settings),
            lambda: open_read_side(settings),
        )
    except ReplayError as ex:
        raise click.ClickException(str(ex)) from None
    if result.recorded_answers != result.answers:
        raise SystemExit(1)


def _existing_pseudonymiser(settings: Settings) -> Callable[[str], str] | None:
    """Return the deployment's pseudonymiser if its key exists; never make a key."""
    path = settings.var_dir / "pseudonym.key"
    if settings.pseudonym_key is not None or path.exists():
        return _read_pseudonymiser(settings)
    return None


def _read_pseudonymiser(settings: Settings) -> Callable[[str], str]:
    """Return the pseudonymiser (making its key if there is none), or exit."""
    from tutorlane.bootstrap import make_pseudonymiser

    try:
        return make_pseudonymiser(settings)
    except ValueError:
        # NOTE: without the error's text, which may quote the key's bytes.
        path = settings.var_dir / "pseudonym.key"
        raise click.ClickException(
            f"{path} does not hold a pseudonym key (64 hex digits): put the "
            "deployment's key back, or set TUTORLANE_PSEUDONYM_KEY (another key "
            "gives every student another pseudonym)"
        ) from None


@replay.command("fit")
@click.option(
    "--course",
    default=None,
    help="Only answers in this course (default: every course's answers).",
)
@click.option("--forget", is_flag=True, help="Also fit forgetting (not plain BKT).")
@click.option("--restarts", default=1, show_default=True, type=click.IntRange(1, 20))
def replay_fit(course: str | None, forget: bool, restarts: int) -> None:
    """Fit BKT per skill from the answers in the event store; save bkt_parameters."""
    from tutorlane.entrypoints.replay import run_fit

    run_fit(load_settings().event_store_url, course, forget, restarts)


@replay.command("evaluate")
@_DATASET
@_STUDENTS
@click.option(
    "--folds",
    type=click.IntRange(2, 100),
    help="Cross-validate on this file alone: fit on the other folds of students.",
)
@click.option("--forget", is_flag=True, help="With --folds: fit forgetting too.")
@click.option("--restarts", default=1, show_default=True, type=click.IntRange(1, 20))
def replay_evaluate(
    dataset: Path,
    students: int | None,
    folds: int | None,
    forget: bool,
    restarts: int,
) -> None:
    """Predict each answer of a file from the earlier ones: AUC and RMSE.

    Without --folds, with the parameters `replay fit` saved; with --folds, by
    cross-validation on the file itself, without the tutor or its database.
    """
    from tutorlane.entrypoints.replay import ReplayError, run_evaluate

    records = _read_dataset(dataset, students)
    try:
        run_evaluate(load_settings().event_store_url, records, folds, forget, restarts)
    except ReplayError as ex:
        raise click.ClickException(str(ex)) from None
