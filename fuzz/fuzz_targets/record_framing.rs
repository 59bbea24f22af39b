//! Record framing: text records split at the separator, binary records by their VarInt
//! length, with and without a size limit; every record found is re-framed to the same bytes.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard::protocol::framing;

fuzz_target!(|data: &[u8]| {
    let limit = data.first().map(|b| usize::from(*b) * 16);
    for limit in [None, limit] {
        let mut text = BytesMut::from(data);
        while let Ok(Some(record)) = framing::split_text_record(&mut text, limit) {
            let mut framed = Vec::new();
            framing::write_text_record(&mut framed, &record);
            assert_eq!(framed.last(), Some(&0x1e));
            assert!(limit.is_none_or(|limit| record.len() <= limit));
        }
        let mut binary = BytesMut::from(data);
        while let Ok(Some(record)) = framing::split_binary_record(&mut binary, limit) {
            let mut framed = Vec::new();
            framing::write_varint(&mut framed, record.len());
            let (length, used) = framing::read_varint(&framed).expect("a written length reads").expect("whole");
            assert_eq!((length, used), (record.len(), framed.len()));
            assert!(limit.is_none_or(|limit| record.len() <= limit));
        }
    }
    let _ = framing::read_varint(data);
});
