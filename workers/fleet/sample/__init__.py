"""The sample model to try the processes on, with its package data: the test criteria
(``test_criteria.dmn``) and the MLflow Project that retrains it (``training/``)."""

from workers.fleet.sample.model import SampleModel, register_sample_model, sample_criteria, sample_training_project

__all__ = ["SampleModel", "register_sample_model", "sample_criteria", "sample_training_project"]
