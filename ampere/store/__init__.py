"""ampere.store"""
