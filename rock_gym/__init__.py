"""rock_gym: container sandboxes as Gymnasium environments for training LLM agents."""

__version__ = "0.1.0"
