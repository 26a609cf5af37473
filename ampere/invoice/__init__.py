"""ampere.invoice"""
