print("creditmeter")
