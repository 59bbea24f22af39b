//! Connection strings: anything parses or is refused, never panics; what parses keeps its
//! endpoint when written back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::service::ConnectionString;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(parsed) = ConnectionString::parse(text) {
        let endpoint = parsed.endpoint().to_string();
        let again = ConnectionString::parse(&format!("Endpoint={endpoint};AccessKey=k;Version=1.0;"))
            .expect("a parsed endpoint parses again");
        assert_eq!(again.endpoint().to_string(), endpoint);
        // The key never shows in the debug form.
        assert!(format!("{parsed:?}").contains("<redacted>"));
    }
});
