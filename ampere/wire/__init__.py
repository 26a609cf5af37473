"""ampere.wire"""
