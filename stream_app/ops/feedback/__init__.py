"""Feedback API: late outcome parts (a user's rating, a grader's score) posted over HTTP.

Served by ``rl-commons feedback`` or mounted on any aiohttp application with
``mount_feedback``; each accepted body is published to the outcomes topic as an
``OutcomeEvent`` part keyed by its decision id, and the stream join closes the reward.
"""

from ._server import TOKEN_ENV, FeedbackRoutes, feedback_app, mount_feedback

__all__ = ["TOKEN_ENV", "FeedbackRoutes", "feedback_app", "mount_feedback"]
