"""IPA, the paper's chunk-level RL: config, chunks, loss, log-probs, resampling, learner (`learners.make("ipa")`).

Importing this package imports nothing heavy; `learners.ipa.learner` loads torch.
"""
