"""协商研究助手: the knowledge-base library (search with citations, topics, briefing packs, expert notes)."""
