"""``python -m devservers.servicenow``: the ServiceNow development server in the foreground."""

from __future__ import annotations

from collections.abc import Sequence

from devservers.servicenow.app import DEFAULT_CALLERS, DEFAULT_GROUPS, DEFAULT_USERS
from devservers.servicenow.server import ServiceNowDevServer
from devservers.serving import CommandLine, serve_in_foreground

COMMAND_LINE = CommandLine("devservers.servicenow", "ServiceNow-compatible development server (Table API on "
                           "incidents) checking requests against a written OpenAPI contract.", 8093, "USER:PASSWORD",
                           "MLC_SERVICENOW_USER", "MLC_SERVICENOW_PASSWORD", DEFAULT_USERS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server in the foreground until SIGINT (Ctrl-C) or SIGTERM."""
    parser = COMMAND_LINE.parser()
    parser.add_argument("--group", action="append", dest="groups", metavar="NAME",
                        help=f"assignment group, repeatable (default: {', '.join(DEFAULT_GROUPS)})")
    parser.add_argument("--caller", action="append", dest="callers", metavar="NAME",
                        help=f"user incidents may name as caller, repeatable (default: {', '.join(DEFAULT_CALLERS)})")
    arguments = parser.parse_args(argv)
    return serve_in_foreground(lambda: ServiceNowDevServer(
        arguments.host, arguments.port, COMMAND_LINE.users(arguments), arguments.groups or DEFAULT_GROUPS,
        arguments.callers or DEFAULT_CALLERS, state_file=arguments.state), arguments.log_level)
