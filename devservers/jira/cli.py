"""``python -m devservers.jira``: the Jira development server in the foreground."""

from __future__ import annotations

import os
from collections.abc import Sequence

from devservers.jira.contract import CONTRACT_ENV
from devservers.jira.server import DEFAULT_USERS, JiraDevServer
from devservers.serving import CommandLine, serve_in_foreground

COMMAND_LINE = CommandLine("devservers.jira", "Jira-compatible development server checking requests against "
                           "Atlassian's OpenAPI contract.", 8089, "EMAIL:TOKEN", "MLC_JIRA_USER", "MLC_JIRA_TOKEN",
                           DEFAULT_USERS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server in the foreground until SIGINT (Ctrl-C) or SIGTERM; the exit status."""
    parser = COMMAND_LINE.parser()
    parser.add_argument("--contract", default=None, metavar="FILE",
                        help=f"Atlassian's OpenAPI document (default: ${CONTRACT_ENV}; without one, requests are "
                             "served unchecked)")
    parser.add_argument("--project", action="append", dest="projects",
                        help="project key, repeatable (default: $MLC_JIRA_PROJECT or MLC)")
    parser.add_argument("--webhook", action="append", dest="webhooks", default=[], metavar="URL")
    parser.add_argument("--webhook-secret", default=os.environ.get("MLC_JIRA_WEBHOOK_SECRET"))
    arguments = parser.parse_args(argv)
    return serve_in_foreground(lambda: JiraDevServer(
        arguments.host, arguments.port, arguments.contract,
        arguments.projects or [os.environ.get("MLC_JIRA_PROJECT") or "MLC"], COMMAND_LINE.users(arguments),
        arguments.webhooks, arguments.webhook_secret, arguments.state), arguments.log_level)
