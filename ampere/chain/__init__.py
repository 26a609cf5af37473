"""ampere.chain"""
