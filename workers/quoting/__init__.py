"""workers/quoting"""
