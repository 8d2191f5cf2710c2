"""``python -m cnnlab.lesson``: the lesson's worked examples
(``cnnlab/insight/worked_examples.py``).
"""

from cnnlab.insight.worked_examples import main

if __name__ == "__main__":
    main()
