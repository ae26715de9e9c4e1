//! The kernel command line (`-append`): whitespace-separated `key=value` words and bare
//! flags. The platform reads `loglevel=`; everything else is for the image and its app.

/// A parsed view over the command line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cmdline<'a> {
    text: &'a str,
}

impl<'a> Cmdline<'a> {
    pub fn new(text: &'a str) -> Self {
        Cmdline { text }
    }

    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// `(key, value)` for every word; a bare flag has the value "".
    pub fn words(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.text.split_ascii_whitespace().map(|w| w.split_once('=').unwrap_or((w, "")))
    }

    /// The value of the last `key=value` with this key.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.words().filter(|(k, _)| *k == key).map(|(_, v)| v).last()
    }

    pub fn has(&self, key: &str) -> bool {
        self.words().any(|(k, _)| k == key)
    }
}
