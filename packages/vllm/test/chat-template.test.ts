import { join } from 'node:path';
import { loadHfTokenizer } from '../src/hf-tokenizer';

const CHAT = join(__dirname, 'fixtures', 'chat-tokenizer');

describe("a chat model's tokenizer (fixture: test/fixtures/chat-tokenizer)", () => {
  const t = loadHfTokenizer(CHAT);
  const conversation = [
    { role: 'system', content: 'You are a terse bot .' },
    { role: 'user', content: 'Hi !' },
    { role: 'assistant', content: 'Hello .' },
    { role: 'user', content: 'How old is the sun ?' },
  ];

  it("encodes a 3-turn conversation (and its system prompt) to the template's token ids, <s> once", () => {
    expect(t.applyChatTemplate(conversation)).toBe(
      '<s><|system|> You are a terse bot . </s> <|user|> Hi ! </s> <|assistant|> Hello . </s> ' +
        '<|user|> How old is the sun ? </s> <|assistant|>',
    );
    // Written by hand from the fixture's vocabulary.
    const expected = [
      [0], // <s>, written by the template; the tokenizer's own <s> is not added a second time
      [3, 6, 7, 8, 9, 10, 11, 1], // <|system|> you are a terse bot . </s>
      [4, 12, 14, 1], // <|user|> hi ! </s>
      [5, 13, 11, 1], // <|assistant|> hello . </s>
      [4, 15, 16, 17, 18, 19, 20, 1], // <|user|> how old is the sun ? </s>
      [5], // <|assistant|>: the generation prompt
    ].flat();
    expect(t.encodeChat!(conversation)).toEqual(expected);
  });

  it('encodes a raw prompt without the template, with the special tokens the tokenizer adds', () => {
    expect(t.encode('How old is the sun ?')).toEqual([0, 15, 16, 17, 18, 19, 20]);
  });

  it("refuses a role the template has no turn for as INVALID_ARGUMENT, with the template's message", () => {
    let err: unknown;
    try {
      t.encodeChat!([{ role: 'tool', content: 'x' }]);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/unknown role tool/) });
  });
});
