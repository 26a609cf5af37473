"""ampere.crypto"""
