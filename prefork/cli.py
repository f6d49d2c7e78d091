"""The ``prefork`` command, generated from the settings table; the only place that exits.

Every error that reaches here becomes one line on stderr (``prefork: error: ...``) and a
non-zero exit status: 2 for a bad command line, 1 for a bad setting or a failed start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from prefork.config import SETTINGS, SETTINGS_BY_NAME, Config, Setting, merge
from prefork.errors import ConfigError, PreforkError
from prefork.server import run_arbiter
from prefork.sockets import parse_bind
from prefork.sources import (
    GUNICORN_ONLY,
    IGNORED,
    IGNORED_KEY,
    GunicornOnly,
    env_args,
    load_config_file,
    translate_gunicorn_names,
)
from prefork.version import __version__, build
from prefork.workerclass import adopt_worker_class

DEFAULT_CONFIG_FILES = ("prefork.conf.py", "gunicorn.conf.py")
EXIT_USAGE = 2
EXIT_FAILED = 1


def _option(setting: Setting) -> Callable[[Any], Any]:
    """The click option for one setting; every default is None so "not given" is visible."""
    declarations = list(setting.flags)
    if setting.negatable:
        long_flags = [flag for flag in setting.flags if flag.startswith("--")]
        declarations = [f"{long_flags[0]}/--no-{long_flags[0][2:]}"]
    kwargs: dict[str, Any] = {"default": None, "help": f"{setting.help}{_default_text(setting)}"}
    if setting.flag_value is not None:
        kwargs.update(is_flag=False, flag_value=setting.flag_value, metavar=setting.metavar)
    elif setting.is_flag:
        kwargs["is_flag"] = True
        if not setting.negatable:
            kwargs["flag_value"] = True
    elif setting.multiple:
        kwargs["multiple"] = True
        kwargs["default"] = ()
        kwargs["metavar"] = setting.metavar
    elif setting.choices:
        kwargs["type"] = click.Choice(setting.choices, case_sensitive=False)
    else:
        kwargs["metavar"] = setting.metavar or "VALUE"
    return click.option(*declarations, setting.name, **kwargs)


def _default_text(setting: Setting) -> str:
    """The default as help text: click cannot show it, every option defaults to None here."""
    default = setting.default
    if default is None or default == "" or (setting.is_flag and not setting.negatable):
        return ""
    if setting.multiple:
        default = " ".join(default)
    elif isinstance(default, bool):
        default = "on" if default else "off"
    return f"  [default: {default}]"


def _gunicorn_option(name: str, spelling: GunicornOnly) -> Callable[[Any], Any]:
    """A hidden option for a gunicorn flag prefork has under another name or not at all, so a
    gunicorn command line runs unchanged; ``prefork.sources`` decides what the value means."""
    kwargs: dict[str, Any] = {"default": None, "hidden": True}
    if spelling.action == "flag":
        kwargs.update(is_flag=True, flag_value=True)
    elif spelling.action == "append":
        kwargs.update(multiple=True, default=())
    return click.option(*spelling.flags, name, **kwargs)


class SectionedCommand(click.Command):
    """A command whose ``--help`` lists its options under the settings table's sections, in the
    order of the CLI reference (``prefork.docs``), rather than as one flat list."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections = {setting.name: setting.section for setting in SETTINGS}
        grouped: dict[str, list[tuple[str, str]]] = {"General": []}
        for setting in SETTINGS:
            grouped.setdefault(setting.section, [])
        for param in self.get_params(ctx):
            if not isinstance(param, click.Option):
                continue  # APP is named in the usage line
            record = param.get_help_record(ctx)
            if record is not None:
                grouped[sections.get(param.name or "", "General")].append(record)
        for section, records in grouped.items():
            if records:
                with formatter.section(section):
                    formatter.write_dl(records)


def build_command() -> click.Command:
    def callback(app: str | None, **values: Any) -> tuple[str | None, dict[str, Any]]:
        return app, values

    command: Callable[..., Any] = callback
    for setting in reversed(SETTINGS):
        if not setting.flags:
            continue  # config-file only (server hooks)
        command = _option(setting)(command)
    for name, spelling in GUNICORN_ONLY.items():
        if spelling.flags:
            command = _gunicorn_option(name, spelling)(command)
    command = click.argument("app", required=False, metavar="APP")(command)
    command = click.version_option(__version__, "-v", "--version", prog_name="prefork",
                                   message=f"%(prog)s %(version)s ({build()})")(command)
    return click.command(
        cls=SectionedCommand,
        name="prefork",
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
        help="Serve APP (module:attribute, or module:factory()) with supervised worker processes.",
    )(command)


def parse_command_line(args: Sequence[str]) -> tuple[str | None, dict[str, Any]]:
    """(APP, the settings given) for one argument list; raises click.ClickException."""
    result = build_command().main(args=list(args), prog_name="prefork", standalone_mode=False)
    if isinstance(result, int):  # --help or --version already printed
        raise SystemExit(result)
    app, values = result
    return app, values


def _parse_layer(args: Sequence[str], source: str) -> tuple[str | None, dict[str, Any]]:
    """One argument list from an environment variable, parsed and checked setting by setting,
    so that an error in it says where it came from."""
    try:
        app, values = parse_command_line(args)
    except click.ClickException as exc:
        raise click.UsageError(f"{source}: {exc.format_message()}") from None
    for name, value in values.items():
        setting = SETTINGS_BY_NAME.get(name)
        if setting is None or value is None or (setting.multiple and not value):
            continue
        try:
            converted = setting.convert(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: {name}: {exc}") from None
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        if name == "bind":
            for address in converted:
                try:
                    parse_bind(address)
                except ConfigError as exc:
                    raise ConfigError(f"{source}: {exc}") from None
    return app, values


def resolve(argv: Sequence[str], environ: dict[str, str]) -> tuple[str, Config, list[str]]:
    """Merge defaults < config file < GUNICORN_CMD_ARGS < PREFORK_CMD_ARGS < argv; the third
    item lists the lines to log at start-up about gunicorn settings that are ignored and about
    the worker class's own settings."""
    sources = [(variable, _parse_layer(args, variable))
               for variable, args in env_args(environ)]
    sources.append(("command line", parse_command_line(argv)))
    config_path = next((values["config"] for _, (_, values) in reversed(sources)
                        if values.get("config")), None)
    if config_path is None:
        config_path = next((name for name in DEFAULT_CONFIG_FILES if os.path.isfile(name)), None)
    file_values = load_config_file(config_path) if config_path else {}
    ignored: dict[str, str] = {}  # gunicorn setting -> where it was last set
    for name in file_values.pop(IGNORED_KEY, []):
        ignored[name] = f"config: {config_path}"
    layers = []
    for source, (_, values) in sources:
        translated = translate_gunicorn_names(values, source)
        for name in translated.pop(IGNORED_KEY, []):
            ignored[name] = source
        layers.append(translated)
    notices = [f"{source}: gunicorn setting {name!r} ignored: {IGNORED[name]}"
               for name, source in ignored.items()]
    if config_path:
        file_values["config"] = config_path
    merged = merge(_environment_defaults(environ), file_values, *layers)
    app = next((app for _, (app, _) in reversed(sources) if app), None) or merged.get("wsgi_app")
    if not app:
        raise click.UsageError("missing APP (module:attribute), e.g. prefork myapp:app")
    config, worker_class_notices = adopt_worker_class(Config.from_mapping(merged))
    return str(app), config, notices + worker_class_notices


def _environment_defaults(environ: dict[str, str]) -> dict[str, Any]:
    """gunicorn's platform conventions: PORT is the default bind (on all interfaces),
    WEB_CONCURRENCY the default worker count and FORWARDED_ALLOW_IPS the default of
    forwarded_allow_ips (uvicorn reads it too); any explicit setting wins over all three."""
    defaults: dict[str, Any] = {}
    if environ.get("FORWARDED_ALLOW_IPS", "").strip():
        defaults["forwarded_allow_ips"] = environ["FORWARDED_ALLOW_IPS"].strip()
    if environ.get("PORT", "").strip():
        defaults["bind"] = (f"0.0.0.0:{environ['PORT'].strip()}",)
    if environ.get("WEB_CONCURRENCY", "").strip():
        defaults["workers"] = environ["WEB_CONCURRENCY"].strip()
    return defaults


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["ctl"]:  # an app spec is module:attribute, never the word "ctl"
        from prefork.ctl import main as ctl_main

        ctl_main(args[1:])
    try:
        environ = dict(os.environ)
        app, config, notices = resolve(args, environ)
        code = run_arbiter(config, app, reload_config=lambda: resolve(args, environ)[1],
                           upgrade_command=args, notices=notices)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        message = exc.format_message().replace("\n", " ")
        print(f"prefork: error: {message} (see prefork --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except PreforkError as exc:
        print(f"prefork: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        sys.exit(EXIT_FAILED)
    sys.exit(code)
