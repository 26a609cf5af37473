"""ampere.graph"""
