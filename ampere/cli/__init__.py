"""ampere.cli"""
