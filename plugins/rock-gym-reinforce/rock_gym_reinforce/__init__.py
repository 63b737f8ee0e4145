"""rock_gym plugin: adds the `plain-reinforce` learner (imported only when it is made)."""

import rock_gym


@rock_gym.hookimpl
def rock_gym_add_learners(registry):  # type: ignore[no-untyped-def]
    registry.add(
        "plain-reinforce",
        "rock_gym_reinforce.learner:PlainReinforce",
        description="plain REINFORCE over candidate tool-call turns (tabular softmax, numpy)",
    )
