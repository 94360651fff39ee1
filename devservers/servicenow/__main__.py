"""``python -m devservers.servicenow``: the ServiceNow development server in the foreground."""

from devservers.servicenow.app import main

raise SystemExit(main())
