var fetchedCounter = (typeof fetchedCounter == "number" ? fetchedCounter : 0) + 1;
