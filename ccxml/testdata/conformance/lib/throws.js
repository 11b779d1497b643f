throw new Error("fetched-boom");
