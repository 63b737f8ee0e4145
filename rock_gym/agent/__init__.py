"""The agent harness: it sits between env and policy and owns the context of long multi-turn episodes."""
