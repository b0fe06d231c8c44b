"""augshift.integrations.evaluate"""
