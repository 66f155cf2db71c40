"""Turns consultation material (政策法规, 领导讲话, 案例模式 …) into a searchable index.

No UI lives here: the `kb` package and its widgets sit on top of this one.
"""
