function libValue() { return "from-lib"; }
