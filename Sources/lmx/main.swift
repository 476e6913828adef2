print("lmx")
