"""Small applications that tests run under real servers."""
