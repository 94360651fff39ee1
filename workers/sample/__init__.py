"""Package data: the sample model's test criteria (``test_criteria.dmn``)."""
