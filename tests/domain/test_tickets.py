"""What a ticket says: the warm-up and the model's stable URL beside the results."""

from __future__ import annotations

from workers.domain.tickets import TicketInput, describe


def test_a_review_ticket_shows_the_warm_up_and_the_stable_url_of_each_runtime():
    data = TicketInput.model_validate({
        "TICKET_KIND": "review", "TICKET_SUMMARY": "Review: m version 2 for DEV", "MODEL_ID": "m",
        "MODEL_VERSION": "2", "WARM_UP_MESSAGE": "dev-mlserver: 20 requests (test data t.csv), p50 3.0 ms",
        "STABLE_ENDPOINTS": {"dev-mlserver": "http://127.0.0.1:8090/v2/models/m/infer",
                             "dev-mlserver-2": "http://127.0.0.1:8091/v2/models/m/infer"}})
    lines = describe(data, "deploy-with-run-test-and-jira", "pi-1", None).splitlines()
    assert "Warm-up: dev-mlserver: 20 requests (test data t.csv), p50 3.0 ms" in lines
    assert "Stable endpoint: http://127.0.0.1:8090/v2/models/m/infer (runtime dev-mlserver)" in lines
    assert "Stable endpoint: http://127.0.0.1:8091/v2/models/m/infer (runtime dev-mlserver-2)" in lines


def test_a_ticket_without_them_does_not_mention_them():
    data = TicketInput.model_validate({"TICKET_KIND": "error", "TICKET_SUMMARY": "Error: m version 2"})
    text = describe(data, "p", "pi-1", None)
    assert "Warm-up" not in text and "Stable endpoint" not in text
