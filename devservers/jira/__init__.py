"""A Jira-compatible development server that checks every request against Atlassian's OpenAPI contract.

What it is: a stand-in for Jira Cloud (REST v3, descriptions and comments as Atlassian
Document Format) and Jira Data Center (REST v2, the same operations with plain-text descriptions and
comments), used by the fleet's tests and by the local demo fleet. Each request under ``/rest/`` is matched
to an operation of Atlassian's published OpenAPI document and checked: path, method, parameters and
JSON body, with the contract's request-side rules (read-only properties may not be sent).
v2 requests are checked against the v3 operation of the same path. The issue fields whose type Jira
knows but the contract leaves open (``fields`` is a free-form object there) are then checked as Jira
does: ``description`` and a comment's ``body`` must be a document in v3 and text in v2, ``labels`` a list
of strings, and so on. A request that does not conform is answered 400 in Jira's error format
(``{"errorMessages": [...], "errors": {...}}``), each message naming the operation, the JSON path and the
complaint, and is recorded in the request log.

Implemented: create, get and edit issue; transitions; comments; JQL search (``/rest/api/3/search/jql``
for Cloud, ``/rest/api/2/search`` for Data Center); ``myself``; ``serverInfo``; "issue created" and "issue
updated" webhooks, signed as Jira Cloud signs secured webhooks; and an unauthenticated test-control
surface under ``/_dev/`` (fault injection, request log, reset, issues, transitions), mirrored by methods
of :class:`JiraDevServer`. ``/browse/KEY`` shows a ticket as a small HTML page.

What it is not: Jira. There are no permissions beyond authentication, no screens or field
configurations, one workflow (To Do, In Progress, Done, Rejected; any status to any other), the issue
types Task, Bug and Story, and JQL limited to ``=``, ``in`` and ``~`` joined by ``AND``. Operations of
the contract that it does not implement answer 501 once their request has been checked. The enhanced
search (``/search/jql``) is missing from older snapshots of the contract; while it is, the server checks
it against a built-in description of that operation and marks those requests ``"contract": "supplement"``
in the log.

The contract is Atlassian's and not part of this repository: it is read from ``spec_path`` /
``--contract`` or ``$MLC_JIRA_CONTRACT``. Without it (none named, or none at the path named) the server
routes requests by its own list of the operations it implements and checks only the types of the
parameters they read and the issue fields above; it says so once at start, and logs those requests
with ``"contract": "unchecked"``.

With a state file (``state_file`` / ``--state``) the issues, comments, statuses and key counters outlive
a restart; without one they are kept in memory only.

Run it in the foreground with ``python -m devservers.jira --host 127.0.0.1 --port 8089``.

Modules: :mod:`.adf` (Atlassian Document Format), :mod:`.jql` (the JQL subset), :mod:`.contract` (the
contract, the server's own routes, field checks), :mod:`.model` (records and the state file's shape),
:mod:`.webhooks`, :mod:`.app` (Jira's behaviour), :mod:`.operations` (the implemented operations),
:mod:`.server` (:class:`JiraDevServer`), :mod:`.cli` (the command line).
"""

from devservers.jira.adf import adf_to_text, text_to_adf
from devservers.jira.cli import main
from devservers.jira.contract import CONTRACT_ENV, Contract, load_contract, resolve_contract_path
from devservers.jira.jql import JqlError, parse_jql
from devservers.jira.server import JiraDevServer
from devservers.jira.webhooks import webhook_signature

__all__ = ["CONTRACT_ENV", "Contract", "JiraDevServer", "JqlError", "adf_to_text", "load_contract", "main",
           "parse_jql", "resolve_contract_path", "text_to_adf", "webhook_signature"]
