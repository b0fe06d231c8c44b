"""augshift.integrations.evaluate.shift_consistency"""
