"""ampere.api"""
