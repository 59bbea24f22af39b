//! The arguments of an invocation: always written as an array, whatever their number.

use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};

/// Values that become an invocation's `arguments` array: tuples of up to 12 `Serialize`
/// values (`()` for none), or a `Vec` of one type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the arguments of an invocation",
    label = "pass a tuple of `Serialize` values, like `(user, text)`, `(text,)` or `()`"
)]
pub trait Arguments: Send + Sync + 'static {
    /// Writes the values as one sequence.
    fn serialize_arguments<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
}

macro_rules! impl_arguments {
    ($count:expr; $($name:ident : $index:tt),*) => {
        impl<$($name: Serialize + Send + Sync + 'static),*> Arguments for ($($name,)*) {
            #[allow(unused_mut)]
            fn serialize_arguments<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut sequence = serializer.serialize_seq(Some($count))?;
                $(sequence.serialize_element(&self.$index)?;)*
                sequence.end()
            }
        }
    };
}

impl_arguments!(0;);
impl_arguments!(1; A: 0);
impl_arguments!(2; A: 0, B: 1);
impl_arguments!(3; A: 0, B: 1, C: 2);
impl_arguments!(4; A: 0, B: 1, C: 2, D: 3);
impl_arguments!(5; A: 0, B: 1, C: 2, D: 3, E: 4);
impl_arguments!(6; A: 0, B: 1, C: 2, D: 3, E: 4, F: 5);
impl_arguments!(7; A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6);
impl_arguments!(8; A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6, H: 7);
impl_arguments!(9; A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6, H: 7, I: 8);
impl_arguments!(10; A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6, H: 7, I: 8, J: 9);
impl_arguments!(11; A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6, H: 7, I: 8, J: 9, K: 10);
impl_arguments!(12; A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6, H: 7, I: 8, J: 9, K: 10, L: 11);

impl<T: Serialize + Send + Sync + 'static> Arguments for Vec<T> {
    fn serialize_arguments<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self)
    }
}

/// Serializes [`Arguments`] as the sequence they are.
pub(crate) struct AsArray<'a, A: ?Sized>(pub &'a A);

impl<A: Arguments + ?Sized> Serialize for AsArray<'_, A> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_arguments(serializer)
    }
}
