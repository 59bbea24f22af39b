//! Load generator and benchmark harness for Switchboard.
