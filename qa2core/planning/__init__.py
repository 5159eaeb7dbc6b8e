"""From a reduction directory to a plan: the request, the walk and scan of ORIGPATH, the
name rules, styles and layouts, OUS names, and the plan itself. Nothing here writes.
"""
