"""A ServiceNow-compatible development server: the Table API on incidents, checked against a written contract.

What it is: a stand-in for a ServiceNow instance's Table API on the table ``incident``, used
by the fleet's tests and the local demo fleet. Each request under ``/api/`` is matched to an operation
of ``servicenow-table-api.openapi.json`` (beside this module, written from ServiceNow's Table API
documentation) and checked: path, method, query and header parameters, JSON body. Each response is
checked against the same document; a departure is a bug of this server, logged as a warning and kept
in the request log as ``response_errors``. Refusals and errors come in ServiceNow's format,
``{"error": {"message": ..., "detail": ...}, "status": "failure"}``; the message of a refused request
names the operation, the place (``request body $.colour``, ``query parameter 'sysparm_query'``) and
the complaint, and the request log keeps it too.

Stricter than an instance, on purpose, so that tests catch mistakes an instance lets pass silently:

* a field the contract does not list, in a POST or PATCH body, is refused with 400 (an instance
  ignores it); so are system fields (``sys_id``, ``number``, ...) and texts longer than the field;
* a query parameter the operation does not declare is refused (an instance reads it as a filter);
* an encoded query that names an unknown field, dot-walks or uses an operator this server lacks is
  refused (an instance drops the part it cannot apply and answers the rest: everything, at worst);
* an unknown field in ``sysparm_fields`` is refused (an instance leaves it out);
* a reference (``caller_id``, ``assigned_to``, ``assignment_group``) must be the sys_id or the
  display value of a known user or group (an instance keeps a dangling sys_id).

Implemented: list (``sysparm_query`` with ``=``, ``!=``, ``LIKE``, ``NOT LIKE``, ``STARTSWITH``,
``ENDSWITH``, ``IN``, ``NOT IN``, ``ISEMPTY``, ``ISNOTEMPTY`` joined by ``^`` and ``^OR``, ``ORDERBY`` and
``ORDERBYDESC``, comparing without regard to case as an instance's database does; ``sysparm_limit``,
``sysparm_offset``; ``X-Total-Count``), create, get and update (PATCH) incidents, each with
``sysparm_fields``, ``sysparm_display_value`` (false, true, all) and ``sysparm_exclude_reference_link``;
``X-no-response-body``; Basic authentication; the incident form
``/incident.do?sys_id=...`` as a small HTML page; and an unauthenticated test-control surface under
``/_dev/`` (faults, request log, reset, incidents), mirrored by methods of :class:`ServiceNowDevServer`.

What it is not: ServiceNow. One table; no ACLs, data policies or business rules beyond numbering
(``INC0010001`` on), priority from impact and urgency, ``active`` and the resolution and closing times;
users and groups are a fixed catalogue; journal fields (``comments``, ``work_notes``) read back empty
as on an instance, their entries shown only by ``/_dev/incidents``; no XML, no ``Link`` header;
``sysparm_view``, ``sysparm_input_display_value`` (references resolve by sys_id or display value
either way) and the domain and count parameters are accepted and have no effect.

The incidents and their journals are kept in memory, or with a state file (``state_file`` /
``--state``) across restarts too.

Run it in the foreground with ``python -m devservers.servicenow --host 127.0.0.1 --port 8093``.

Modules: :mod:`.query` (encoded queries), :mod:`.app` (the instance's behaviour and the operations),
:mod:`.server` (:class:`ServiceNowDevServer`), :mod:`.cli` (the command line); the contract
``servicenow-table-api.openapi.json`` is package data.
"""

from devservers.servicenow.app import CONTRACT_PATH, load_contract, reference_id
from devservers.servicenow.cli import main
from devservers.servicenow.query import QueryError, parse_query
from devservers.servicenow.server import ServiceNowDevServer

__all__ = ["CONTRACT_PATH", "QueryError", "ServiceNowDevServer", "load_contract", "main", "parse_query",
           "reference_id"]
