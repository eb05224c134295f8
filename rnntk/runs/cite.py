"""``rnntk cite RUN``: the papers a run used, as BibTeX, from one table.

:data:`PAPERS` holds the entries; :data:`RULES` says which run used which (its command and the
options recorded in ``run.h5``'s ``/config``). Add a method: add its entry and one rule.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

PAPERS: dict[str, str] = {
    "yu2024sofo": """@inproceedings{yu2024sofo,
  author = {Yu, Youjing and Xia, Rui and Ma, Qingxi and Lengyel, M{\\'a}t{\\'e} and Hennequin, Guillaume},
  title = {Second-order forward-mode optimization of recurrent neural networks for neuroscience},
  booktitle = {Advances in Neural Information Processing Systems},
  volume = {37},
  year = {2024},
  url = {https://github.com/hennequin-lab/SOFO}
}""",
    "zucchet2023online": """@inproceedings{zucchet2023online,
  author = {Zucchet, Nicolas and Meier, Robert and Schug, Simon and Mujika, Asier and Sacramento, Jo{\\~a}o},
  title = {Online learning of long-range dependencies},
  booktitle = {Advances in Neural Information Processing Systems},
  volume = {36},
  year = {2023}
}""",
    "orvieto2023lru": """@inproceedings{orvieto2023lru,
  author = {Orvieto, Antonio and Smith, Samuel L. and Gu, Albert and Fernando, Anushan and Gulcehre, Caglar and Pascanu, Razvan and De, Soham},
  title = {Resurrecting Recurrent Neural Networks for Long Sequences},
  booktitle = {Proceedings of the 40th International Conference on Machine Learning},
  year = {2023}
}""",
    "menick2021snap": """@inproceedings{menick2021snap,
  author = {Menick, Jacob and Elsen, Erich and Evci, Utku and Osindero, Simon and Simonyan, Karen and Graves, Alex},
  title = {Practical Real Time Recurrent Learning with a Sparse Approximation},
  booktitle = {International Conference on Learning Representations},
  year = {2021}
}""",
    "engelken2023floss": """@inproceedings{engelken2023floss,
  author = {Engelken, Rainer},
  title = {Gradient Flossing: Improving Gradient Descent through Dynamic Control of Jacobians},
  booktitle = {Advances in Neural Information Processing Systems},
  volume = {36},
  year = {2023}
}""",
    "engelken2023lyapunov": """@article{engelken2023lyapunov,
  author = {Engelken, Rainer and Wolf, Fred and Abbott, L. F.},
  title = {Lyapunov spectra of chaotic recurrent neural networks},
  journal = {Physical Review Research},
  volume = {5},
  pages = {043044},
  year = {2023}
}""",
    "soo2024recurrent": """@inproceedings{soo2024recurrent,
  author = {Soo, Wayne W.M. and Battista, Aldo and Radmard, Puria and Wang, Xiao-Jing},
  title = {Recurrent neural network dynamical systems for biological vision},
  booktitle = {Advances in Neural Information Processing Systems},
  volume = {37},
  year = {2024}
}""",
    "norcliffe2023gq": """@article{norcliffe2023gq,
  author = {Norcliffe, Alexander and Deisenroth, Marc},
  title = {{F}aster {T}raining of {N}eural {ODE}s {U}sing {G}au{\\ss}{\\textendash}{L}egendre {Q}uadrature},
  journal = {Transactions on Machine Learning Research},
  year = {2023}
}""",
    "chen2018neuralode": """@inproceedings{chen2018neuralode,
  author = {Chen, Ricky T. Q. and Rubanova, Yulia and Bettencourt, Jesse and Duvenaud, David},
  title = {Neural Ordinary Differential Equations},
  booktitle = {Advances in Neural Information Processing Systems},
  volume = {31},
  year = {2018}
}""",
    "torchdiffeq": """@misc{torchdiffeq,
  author = {Chen, Ricky T. Q.},
  title = {torchdiffeq},
  year = {2018},
  url = {https://github.com/rtqichen/torchdiffeq}
}""",
    "kidger2021seminorm": """@inproceedings{kidger2021seminorm,
  author = {Kidger, Patrick and Chen, Ricky T. Q. and Lyons, Terry J.},
  title = {``{H}ey, that's not an {ODE}'': Faster {ODE} Adjoints via Seminorms},
  booktitle = {Proceedings of the 38th International Conference on Machine Learning},
  year = {2021}
}""",
    "li2020torchsde": """@inproceedings{li2020torchsde,
  author = {Li, Xuechen and Wong, Ting-Kam Leonard and Chen, Ricky T. Q. and Duvenaud, David},
  title = {Scalable Gradients for Stochastic Differential Equations},
  booktitle = {International Conference on Artificial Intelligence and Statistics},
  year = {2020}
}""",
    "sussillo2013opening": """@article{sussillo2013opening,
  author = {Sussillo, David and Barak, Omri},
  title = {Opening the Black Box: Low-Dimensional Dynamics in High-Dimensional Recurrent Neural Networks},
  journal = {Neural Computation},
  volume = {25},
  number = {3},
  pages = {626--649},
  year = {2013}
}""",
    "stewart2002krylovschur": """@article{stewart2002krylovschur,
  author = {Stewart, G. W.},
  title = {A {K}rylov--{S}chur Algorithm for Large Eigenproblems},
  journal = {SIAM Journal on Matrix Analysis and Applications},
  volume = {23},
  number = {3},
  pages = {601--614},
  year = {2002}
}""",
    "lehoucq1998arpack": """@book{lehoucq1998arpack,
  author = {Lehoucq, Richard B. and Sorensen, Danny C. and Yang, Chao},
  title = {{ARPACK} Users' Guide: Solution of Large-Scale Eigenvalue Problems with Implicitly Restarted {A}rnoldi Methods},
  publisher = {SIAM},
  address = {Philadelphia},
  year = {1998}
}""",
    "kingma2015adam": """@inproceedings{kingma2015adam,
  author = {Kingma, Diederik P. and Ba, Jimmy},
  title = {Adam: A Method for Stochastic Optimization},
  booktitle = {International Conference on Learning Representations},
  year = {2015}
}""",
}

Config = Mapping[str, Any]
# (command, predicate on the run's /config, paper keys): every matching rule adds its papers, in order
RULES: list[tuple[str, Callable[[Config], bool], tuple[str, ...]]] = [
    ("sofo-train", lambda c: c.get("optimizer", "sofo") in ("sofo", "both"), ("yu2024sofo",)),
    ("sofo-train", lambda c: c.get("optimizer") in ("adam", "both"), ("kingma2015adam",)),
    ("online-lru", lambda c: True, ("zucchet2023online",)),
    ("online-lru", lambda c: c.get("arch", "lru") == "lru", ("orvieto2023lru",)),
    ("online-lru", lambda c: "snap" in str(c.get("rule", "")), ("menick2021snap",)),
    ("online-lru-gradcheck", lambda c: True, ("zucchet2023online", "orvieto2023lru")),
    ("online-lru-memory", lambda c: True, ("zucchet2023online",)),
    ("floss", lambda c: True, ("engelken2023floss", "engelken2023lyapunov")),
    ("lyapunov", lambda c: True, ("engelken2023lyapunov",)),
    ("fixed-points", lambda c: True, ("sussillo2013opening",)),
    ("cordsnet-eval", lambda c: True, ("soo2024recurrent",)),
    ("cordsnet-eigs", lambda c: True, ("soo2024recurrent",)),
    *((cmd, lambda c: c.get("method") == "arnoldi" and c.get("max_restarts", 1) != 0, ("stewart2002krylovschur",)) for cmd in ("eigs", "cordsnet-eigs")),
    *((cmd, lambda c: c.get("method") == "arpack", ("lehoucq1998arpack",)) for cmd in ("eigs", "cordsnet-eigs")),
    ("ode-train", lambda c: True, ("chen2018neuralode", "torchdiffeq")),
    ("ode-train", lambda c: c.get("adjoint") in ("gq", "auto"), ("norcliffe2023gq",)),
    ("ode-train", lambda c: c.get("adjoint") == "seminorm", ("kidger2021seminorm",)),
    ("ode-train", lambda c: str(c.get("adjoint", "")).startswith("sde") or c.get("task") == "ou", ("li2020torchsde",)),
    ("selftest", lambda c: True, ("kingma2015adam",)),
]


def papers_for(command: str, config: Config) -> list[str]:
    """The :data:`PAPERS` keys a run of ``command`` with ``config`` used, without repeats."""
    keys: list[str] = []
    for cmd, pred, ks in RULES:
        if cmd == command and pred(config):
            keys += [k for k in ks if k not in keys]
    return keys


def bibtex(keys: list[str]) -> str:
    """The BibTeX entries of ``keys``, separated by blank lines."""
    return "\n\n".join(PAPERS[k] for k in keys) + ("\n" if keys else "")
