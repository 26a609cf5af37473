"""ampere.tower"""
